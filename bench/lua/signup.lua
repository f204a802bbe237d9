-- POST /api/v1/auth/signup with a new address each time.
-- wrk ... -s signup.lua URL -- NONCE PASSWORD
-- With BENCH_CAPTURE=FILE, the refresh tokens of the new sessions are written there.
local common = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done, response = common.setup, common.done, common.count_and_capture

local nonce, password, sent = nil, nil, 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  nonce, password = args[1], args[2]
end

function request()
  sent = sent + 1
  local body = string.format(
    '{"email": "signup-%s-%d-%d@example.com", "password": "%s"}',
    nonce, thread_id, sent, password
  )
  return wrk.format("POST", "/api/v1/auth/signup", headers, body)
end
