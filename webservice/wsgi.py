"""WSGI entry point for gunicorn: `gunicorn -c webservice/gunicorn.conf.py webservice.wsgi:app`.

The app, and so the model, is built here once; with `preload_app` that happens in the gunicorn
master before the workers fork, so they share the loaded model's memory. If the bundle store cannot
be reached then, each worker loads it later, in the background (webservice.model_slot).
"""

from webservice import create_app

app = create_app()
