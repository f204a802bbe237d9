-- GET PATH with a credential header rotating over a file's lines (access tokens, API keys).
-- wrk ... -s get.lua URL -- PATH HEADER PREFIX FILE [PAUSE_MS]
--   e.g. -- /api/v1/auth/me Authorization "Bearer " tokens.txt
-- With PAUSE_MS, each connection waits that long after an answer before its next request:
-- a paced load below saturation, whose latencies are the server's and not a queue's.
local common = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done, response = common.setup, common.done, common.count

local path, header, prefix, values, index

function init(args)
  path, header, prefix = args[1], args[2], args[3]
  values = common.lines(args[4])
  index = (thread_id * 101) % #values -- threads start apart
  local pause = tonumber(args[5] or "0")
  if pause > 0 then
    delay = function() return pause end -- wrk looks for this global after init
  end
end

function request()
  index = index % #values + 1
  return wrk.format("GET", path, { [header] = prefix .. values[index] })
end
