"""Appeal outcomes (``/v1/webhooks/appeals``) and the appeal-overturn report."""
