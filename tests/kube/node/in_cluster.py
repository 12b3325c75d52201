"""The in-cluster client of the node tests: the official OpenAI Python SDK in a pod of its own,
calling the router as in-cluster n8n would. Run inside the client pod by node-test.sh
(`kubectl exec -i client -- python3 - ACTION ARGS... < in_cluster.py`); prints one JSON line
with what it saw and exits non-zero when a check fails.

Actions:
  chat BASE_URL KEY                    a chat and a streamed chat
  session KEY URL_A URL_B SESSION_ID   three turns of one conversation, alternating routers
  stream BASE_URL KEY                  one long streamed answer, read to its end or its error
  load BASE_URL KEY STOP_FILE          short requests back to back beside one long stream, until
                                       STOP_FILE exists; every failure is reported
"""

import json
import os
import sys
import threading
import time

from openai import OpenAI


def client(base_url, key):
    # No retries: a request the hub failed must show here, not be hidden by the SDK.
    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)


def user(text):
    return [{"role": "user", "content": text}]


def done(result, ok=True):
    print(json.dumps(result), flush=True)
    sys.exit(0 if ok else 1)


def chat(base_url, key):
    c = client(base_url, key)
    answer = c.chat.completions.create(model="claude", messages=user("[[reply:hello from the cluster]]"))
    text = answer.choices[0].message.content
    stream = c.chat.completions.create(
        model="claude", stream=True, stream_options={"include_usage": True},
        messages=user("[[words:5]] [[delay-ms:20]] count"))
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage.total_tokens
    streamed = "".join(pieces)
    ok = text == "hello from the cluster" and streamed.split() == [f"word{i}" for i in range(1, 6)] \
        and len(pieces) > 1 and usage
    done({"text": text, "streamed": streamed, "chunks": len(pieces), "usage": usage, "model": answer.model}, ok)


def session(key, url_a, url_b, session_id):
    turns = [(url_a, "[[reply:hello Ada]] my name is Ada"), (url_b, "[[reply:noted]] I like green tea"),
             (url_a, "[[reply:you are Ada]] what is my name?")]
    seen = []
    for url, text in turns:
        c = client(url, key)
        raw = c.chat.completions.with_raw_response.create(
            model="claude", messages=user(text), extra_headers={"X-Session-ID": session_id})
        seen.append({"router": url, "session": raw.headers.get("x-session-id"),
                     "text": raw.parse().choices[0].message.content})
    done({"turns": seen}, all(t["session"] == session_id for t in seen))


def stream(base_url, key):
    c = client(base_url, key)
    text, error, t_error, told = "", None, None, False
    try:
        s = c.chat.completions.create(model="claude", stream=True,
                                      messages=user("[[words:600]] [[delay-ms:100]] a long answer"))
        for chunk in s:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                if not told and len(text.split()) >= 3:
                    # node-test.sh waits for this line before it deletes the serving pod.
                    print("streaming", flush=True)
                    told = True
    except Exception as e:  # the SDK raises on an error event in the stream
        error, t_error = f"{type(e).__name__}: {e}", time.time()
    done({"words": len(text.split()), "error": error, "error_at": t_error}, True)


def load(base_url, key, stop_file):
    c = client(base_url, key)
    failures, counts = [], {"short": 0, "long": 0}

    def long_stream():
        try:
            s = c.chat.completions.create(model="claude", stream=True,
                                          messages=user("[[words:150]] [[delay-ms:100]] in flight"))
            words = "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices).split()
            if words != [f"word{i}" for i in range(1, 151)]:
                failures.append(f"long stream: {len(words)} words")
            counts["long"] += 1
        except Exception as e:
            failures.append(f"long stream: {type(e).__name__}: {e}")

    t = threading.Thread(target=long_stream)
    t.start()
    i = 0
    while not os.path.exists(stop_file):
        i += 1
        try:
            a = c.chat.completions.create(model="claude", messages=user(f"[[reply:r{i}]]"))
            if a.choices[0].message.content != f"r{i}":
                failures.append(f"request {i}: {a.choices[0].message.content!r}")
            counts["short"] += 1
        except Exception as e:
            failures.append(f"request {i}: {type(e).__name__}: {e}")
        time.sleep(0.2)
    t.join()
    done({"counts": counts, "failures": failures}, not failures and counts["long"] == 1)


if __name__ == "__main__":
    action, args = sys.argv[1], sys.argv[2:]
    {"chat": chat, "session": session, "stream": stream, "load": load}[action](*args)
