-- wrk script for bench/online.sh: POST the JSON file named after `--`, then print one parsable summary line.
--   wrk -t2 -c8 -d5s -s bench/wrk_post.lua http://127.0.0.1:8000/predict -- body.json

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  wrk.headers["Content-Type"] = "application/json"
  file:close()
end

-- Latencies are in microseconds; "failed" counts socket errors, timeouts and non-2xx answers.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d failed=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
