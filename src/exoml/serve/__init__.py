"""`exoml serve`: a local web app over the runs folder (app.py: routes and limits; html.py: the
pages; page.py: what a task declares to get its page; static/: the page's CSS and script)."""
