-- Shared by the wrk scripts here: counts what the responses showed, and prints one JSON line the benchmark parses.
-- Each wrk thread has its own Lua state: `shown`, `sent` and `answered` are per thread, summed in done() through
-- setup's thread handles. A request sent and never answered (in flight when the run's time was up, or past wrk's
-- timeout) may still have been served and logged by the host, so the log can hold up to `unanswered` slates more
-- than wrk saw: the benchmark reconciles within that bound.
local threads = {}
shown = 0
sent = 0
answered = 0

function count_sent() sent = sent + 1 end
function count_answered() answered = answered + 1 end

-- PACE_MS: an open-ish load at a set rate. Each connection waits about PACE_MS before each request (drawn uniformly
-- from 0.5x to 1.5x, so the connections do not fire in step), so the offered rate is about connections / PACE_MS
-- whatever the latency, and the latency wrk measures is that of a server not kept saturated by the load itself.
local pace_ms = tonumber(os.getenv("PACE_MS") or "0")
if pace_ms > 0 then
  delay = function() return math.floor(pace_ms * (0.5 + math.random())) end
end

function setup(thread)
  table.insert(threads, thread)
end

function count_shown(body, pattern)
  local _, n = string.gsub(body, pattern, "")
  shown = shown + n
end

function done(summary, latency, requests)
  local total, unanswered = 0, 0
  for _, t in ipairs(threads) do
    total = total + (t:get("shown") or 0)
    unanswered = unanswered + (t:get("sent") or 0) - (t:get("answered") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"shown":%d,"unanswered":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write + errors.timeout, total, unanswered,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
