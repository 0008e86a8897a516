"""The web console at ``/console/``: server-rendered pages over the same domain functions
and role checks as the API."""
