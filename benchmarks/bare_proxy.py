"""The reference point: a bare Flask + requests proxy with no features (20 lines).

Run under gunicorn gthread like the gateway; ``UPSTREAM`` is the base URL.
"""

import os

import requests
from flask import Flask, Response, request

app = Flask(__name__)
session = requests.Session()
UPSTREAM = os.environ["UPSTREAM"]


@app.post("/v1/chat/completions")
def chat():
    r = session.post(UPSTREAM + "/v1/chat/completions", data=request.get_data(),
                     headers={"Content-Type": "application/json"})
    return Response(r.content, status=r.status_code, mimetype="application/json")
