-- wrk script for the Plumbline benchmark (driven by benchmarks/run.py), used for both the
-- ceiling and the webhook runs so that the load generator does the same work in each.
--
-- Environment:
--   PLUMBLINE_WRK_RESULT    file to write the JSON result to (done() below)
--   PLUMBLINE_WRK_REQUESTS  replay mode: thread N reads "<prefix>-N.txt", one pre-signed
--                           webhook per line ("<event id>\t<signature>\t<body>"), and sends
--                           each line once, in order; threads never share a line
--   PLUMBLINE_WRK_SOURCE    replay mode: the X-Plumbline-Source header value
--   PLUMBLINE_WRK_PATH      repeat mode (no PLUMBLINE_WRK_REQUESTS): GET this path each time
--
-- Every response is counted by status. In replay mode the event id of each 202 (echoed back
-- in X-Request-ID) is written to "<result>.acked", one per line, so that the run can check
-- that every acknowledged event is stored.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end

local lines = {}
local source = nil
local repeated = nil
local idle = nil
local webhook_path = "/v1/webhooks/decisions"

function init(args)
  statuses = {}
  acked = {}
  issued = 0
  answered = 0
  exhausted = false
  local prefix = os.getenv("PLUMBLINE_WRK_REQUESTS")
  if prefix then
    source = os.getenv("PLUMBLINE_WRK_SOURCE")
    for line in io.lines(prefix .. "-" .. id .. ".txt") do
      lines[#lines + 1] = line
    end
    -- Sent only when the lines run out, while the thread stops: no side effect.
    idle = wrk.format("GET", "/healthz")
  else
    repeated = wrk.format("GET", os.getenv("PLUMBLINE_WRK_PATH") or "/healthz")
  end
end

function request()
  if repeated then
    issued = issued + 1
    return repeated
  end
  -- Note: wrk calls request() once on thread 0 to verify the script and never sends that
  -- request; it is counted in `issued` like the requests in flight when wrk stops.
  if issued >= #lines then
    exhausted = true
    wrk.thread:stop()
    return idle
  end
  issued = issued + 1
  local event_id, signature, body = lines[issued]:match("^([^\t]+)\t([^\t]+)\t(.*)$")
  return wrk.format("POST", webhook_path, {
    ["Content-Type"] = "application/json",
    ["X-Plumbline-Source"] = source,
    ["X-Plumbline-Signature"] = signature,
    ["X-Request-ID"] = event_id,
  }, body)
end

function response(status, headers, body)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status == 202 and not repeated then
    acked[#acked + 1] = headers["x-request-id"] or headers["X-Request-ID"] or "?"
  end
end

local function json_number(value)
  return string.format("%.0f", value)
end

function done(summary, latency, requests)
  local result_path = os.getenv("PLUMBLINE_WRK_RESULT")
  local acked_file = assert(io.open(result_path .. ".acked", "w"))
  local totals = {}
  local parts = {}
  for _, thread in ipairs(threads) do
    local thread_statuses = thread:get("statuses")
    local codes = {}
    for status, count in pairs(thread_statuses) do
      totals[status] = (totals[status] or 0) + count
      codes[#codes + 1] = string.format('"%d": %s', status, json_number(count))
    end
    for _, event_id in ipairs(thread:get("acked")) do
      acked_file:write(event_id, "\n")
    end
    parts[#parts + 1] = string.format(
      '{"id": %d, "issued": %s, "answered": %s, "exhausted": %s, "statuses": {%s}}',
      thread:get("id"), json_number(thread:get("issued")), json_number(thread:get("answered")),
      tostring(thread:get("exhausted")), table.concat(codes, ", "))
  end
  acked_file:close()
  local codes = {}
  for status, count in pairs(totals) do
    codes[#codes + 1] = string.format('"%d": %s', status, json_number(count))
  end
  local errors = summary.errors
  local out = assert(io.open(result_path, "w"))
  out:write(string.format(
    '{"requests": %s, "duration_us": %s, "bytes": %s, ' ..
    '"latency_us": {"p50": %s, "p90": %s, "p99": %s, "mean": %s, "max": %s}, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"statuses": {%s}, "threads": [%s]}\n',
    json_number(summary.requests), json_number(summary.duration), json_number(summary.bytes),
    json_number(latency:percentile(50)), json_number(latency:percentile(90)),
    json_number(latency:percentile(99)), json_number(latency.mean), json_number(latency.max),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    table.concat(codes, ", "), table.concat(parts, ", ")))
  out:close()
end
