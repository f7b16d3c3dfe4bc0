"""Qt-light parts: backend client and process, jobs as QgsTasks, layer styling, export."""
