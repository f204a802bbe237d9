-- POST /api/v1/auth/refresh, each refresh token used once: a token's answer carries its
-- successor, which goes back into the thread's pool. Each thread owns its share of the file's
-- tokens, so no two connections ever present the same one (a replay would revoke the session).
-- A connection has at most one request in flight, but wrk sometimes builds a request and
-- drops it unsent (seen at start-up: one request() call per thread more than its connections
-- before any answer came back), and an answer lost to a socket error never comes back: each
-- costs the pool a token, unused. So the pool must be well above the thread's connections
-- (the bench warns below twice); should it run dry, a deliberately invalid token is sent
-- rather than a replayed one, and its 401 shows in the status counts.
-- wrk ... -s refresh.lua URL -- TOKENS_FILE WRK_THREADS
local common = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done = common.setup, common.done

local pool, head, tail = {}, 1, 0
local headers = { ["Content-Type"] = "application/json" }

local function push(token)
  tail = tail + 1
  pool[tail] = token
end

function init(args)
  local threads = tonumber(args[2])
  for i, token in ipairs(common.lines(args[1])) do
    if (i - 1) % threads == thread_id - 1 then
      push(token)
    end
  end
end

function request()
  local token = "starved.pool.token"
  if head <= tail then
    token = pool[head]
    pool[head] = nil
    head = head + 1
  end
  local body = string.format('{"refresh_token": "%s"}', token)
  return wrk.format("POST", "/api/v1/auth/refresh", headers, body)
end

function response(status, _headers, body)
  common.count(status)
  if status == 200 then
    local successor = common.refresh_token(body)
    if successor then
      push(successor)
    end
  end
end
