-- wrk script: POSTs the bench server's small JSON order to the URL's path.
--
-- Environment:
--   KEY_MODE  new    a unique Idempotency-Key per request
--             replay one Idempotency-Key for every request of the run
--             none   no Idempotency-Key header (the default)
--   RUN_ID    makes the keys of this run differ from those of every other run
--
-- When wrk finishes, done() prints one line that http.sh parses:
--   RESULT requests=N duration_us=N p50_us=N p99_us=N errors=N non2xx=N

local mode = os.getenv("KEY_MODE") or "none"
local run_id = os.getenv("RUN_ID") or tostring(os.time())

wrk.method = "POST"
wrk.body = '{"sku":"sku-000123","quantity":2}'
wrk.headers["Content-Type"] = "application/json"

if mode == "replay" then
  wrk.headers["Idempotency-Key"] = run_id .. "-replay"
elseif mode ~= "none" and mode ~= "new" then
  error("invalid KEY_MODE " .. mode .. ": expected new, replay or none")
end

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

if mode == "new" then
  local counter = 0

  function request()
    counter = counter + 1
    wrk.headers["Idempotency-Key"] = run_id .. "-" .. thread_id .. "-" .. counter
    return wrk.format()
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests,
    summary.duration,
    latency:percentile(50),
    latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.timeout,
    errors.status
  ))
end
