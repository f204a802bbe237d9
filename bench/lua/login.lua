-- POST /api/v1/auth/login with the right password, rotating over the prepared accounts.
-- wrk ... -s login.lua URL -- EMAILS_FILE PASSWORD
-- With BENCH_CAPTURE=FILE, the refresh tokens of the new sessions are written there.
local common = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done, response = common.setup, common.done, common.count_and_capture

local emails, password, index
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  emails, password = common.lines(args[1]), args[2]
  index = (thread_id * 37) % #emails
end

function request()
  index = index % #emails + 1
  local body = string.format('{"login": "%s", "password": "%s"}', emails[index], password)
  return wrk.format("POST", "/api/v1/auth/login", headers, body)
end
