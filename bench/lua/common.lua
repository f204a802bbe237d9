-- Shared by the bench's wrk scripts: thread ids, data files, status counts, one JSON summary.
--
-- wrk runs setup() and done() in its main Lua state and init(), request() and response() in
-- each thread's own state; values cross between them only through thread:set and thread:get.
-- init(args) gets the arguments after `--` as args[1], args[2], ...
local common = {}
local threads = {}

statuses = {} -- per thread: HTTP status -> answers
captured = {} -- per thread: refresh tokens from answers, when BENCH_CAPTURE names a file

function common.setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function common.lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  if #lines == 0 then
    error("no lines in " .. path)
  end
  return lines
end

function common.count(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function common.refresh_token(body)
  return body and string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
end

-- Counts the answer and keeps its refresh token (login and sign-up make fresh sessions, which
-- the refresh scenario then rotates).
function common.count_and_capture(status, _headers, body)
  common.count(status)
  if os.getenv("BENCH_CAPTURE") and status >= 200 and status < 300 then
    local token = common.refresh_token(body)
    if token then
      captured[#captured + 1] = token
    end
  end
end

local function write_captured(path)
  local file = assert(io.open(path, "w"))
  for _, thread in ipairs(threads) do
    for _, token in ipairs(thread:get("captured") or {}) do
      file:write(token, "\n")
    end
  end
  file:close()
end

local function statuses_json()
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(merged) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function common.done(summary, latency, _requests)
  if os.getenv("BENCH_CAPTURE") then
    write_captured(os.getenv("BENCH_CAPTURE"))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d}, '
      .. '"statuses": %s}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), statuses_json()
  ))
end

return common
