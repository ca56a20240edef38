#!/usr/bin/env bash
# The ask/tell flow of train.py with curl: create an experiment, ask for suggestions, report
# observations each epoch, complete each trial, print the best. JSON is read with python3.
#
#   tuneflow serve &                      # in another terminal: http://127.0.0.1:8470
#   examples/custom-loop/curl.sh          # the experiment "curl-demo"; curl.sh NAME for another
#   TUNEFLOW_URL=http://HOST:PORT TUNEFLOW_TOKEN=T MAX_TRIALS=20 examples/custom-loop/curl.sh
#
# MAX_TRIALS (default 8) is the maxTrialCount of the experiment it creates.
set -euo pipefail

url="${TUNEFLOW_URL:-http://127.0.0.1:8470}"
name="${1:-curl-demo}"
max_trials="${MAX_TRIALS:-8}"
api="$url/api/v1/experiments"
auth=()
if [[ -n "${TUNEFLOW_TOKEN:-}" ]]; then
  auth=(-H "Authorization: Bearer $TUNEFLOW_TOKEN")
fi

# call METHOD URL [JSON]: prints the answer's body; fails on an error status except those
# listed in $ok (e.g. ok=409), printing the server's message.
call() {
  local method=$1 target=$2 body=${3:-} out status
  out=$(mktemp)
  if [[ -n "$body" ]]; then
    status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "${auth[@]}" \
      -H 'Content-Type: application/json' --data "$body" "$target")
  else
    status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "${auth[@]}" "$target")
  fi
  if (( status >= 400 )) && [[ " ${ok:-} " != *" $status "* ]]; then
    echo "$method $target: HTTP $status $(cat "$out")" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

# json EXPR: evaluates a Python expression over the JSON document on stdin (bound to d);
# strings print as they are, anything else as JSON.
json() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# 1. Create the experiment (a 409 means it exists already: go on with it).
ok=409 call POST "$api" "$(cat <<JSON
{"apiVersion": "tuneflow.dev/v1alpha1", "kind": "Experiment",
 "metadata": {"name": "$name"},
 "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
          "algorithm": {"algorithmName": "random",
                        "algorithmSettings": [{"name": "random_state", "value": "42"}]},
          "maxTrialCount": $max_trials, "parallelTrialCount": 2,
          "parameters": [
            {"name": "lr", "parameterType": "double",
             "feasibleSpace": {"min": "1e-3", "max": "1", "distribution": "logUniform"}},
            {"name": "width", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}}]}}
JSON
)" >/dev/null

while true; do
  # 2. Ask for one trial.
  answer=$(call POST "$api/$name/suggestions" '{"count": 1}')
  trial=$(json 'd["trials"][0]["name"] if d["trials"] else ""' <<<"$answer")
  if [[ -z "$trial" ]]; then
    if [[ $(json 'd["done"]' <<<"$answer") == true ]]; then
      break                                       # finished: no trial will ever come
    fi
    sleep 1; continue                             # every parallel slot is taken: wait
  fi
  params=$(json 'd["trials"][0]["parameters"]' <<<"$answer")
  echo "$trial: $params"

  # 3. "Train" for 5 epochs, reporting the loss of each (a made-up curve of lr and width).
  loss=""
  for epoch in 0 1 2 3 4; do
    loss=$(json "(__import__('math').log10(d['lr']) + 1.5) ** 2 + 1 / d['width'] + 1 / ($epoch + 1)" <<<"$params")
    decision=$(call POST "$api/$name/trials/$trial/observations" \
      "{\"step\": $epoch, \"metrics\": {\"loss\": $loss}}" | json 'd["decision"]')
    [[ "$decision" == prune ]] && break
  done

  # 4. Complete it (a pruned trial is over already: completing it again changes nothing).
  state=$(call POST "$api/$name/trials/$trial/complete" "{\"metrics\": {\"loss\": $loss}}" | json 'd["state"]')
  echo "  -> $state, loss $loss"
done

# 5. The best trial.
call GET "$api/$name" | json 'd["best"]'
