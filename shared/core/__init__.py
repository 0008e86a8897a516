"""The platform every service stands on: settings, database, errors, queue, outbox, signing,
encryption, observability, pagination and auth."""
