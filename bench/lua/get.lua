-- GET PATH with a credential header rotating over a file's lines (access tokens, API keys).
-- wrk ... -s get.lua URL -- PATH HEADER PREFIX FILE
--   e.g. -- /api/v1/auth/me Authorization "Bearer " tokens.txt
local common = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done, response = common.setup, common.done, common.count

local path, header, prefix, values, index

function init(args)
  path, header, prefix = args[1], args[2], args[3]
  values = common.lines(args[4])
  index = (thread_id * 101) % #values -- threads start apart
end

function request()
  index = index % #values + 1
  return wrk.format("GET", path, { [header] = prefix .. values[index] })
end
