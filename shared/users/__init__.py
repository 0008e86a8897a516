"""People who sign in to the console: accounts, passwords, one-time links, sessions."""
