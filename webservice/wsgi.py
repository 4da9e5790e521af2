"""WSGI entry point for gunicorn: `gunicorn -c webservice/gunicorn.conf.py webservice.wsgi:app`.

The app, and so the model, is built here once; with `preload_app` that happens in the gunicorn
master before the workers fork, so they share the loaded model's memory. If the bundle store cannot
be reached then, each worker loads it later, in the background, starting as it starts
(webservice.model_slot). Granian imports this module in each worker, which starts its retry here.
"""

from webservice.app import create_app
from webservice.serve import app_is_preloaded

# In gunicorn's master a retry loop would load a model no worker serves; gunicorn.conf.py starts one in each.
app = create_app(retry_now=not app_is_preloaded())
