"""Between Qt and app.services: the services holder, task runner, item actions, table models."""
