-- A login flood: a wrong password for a new unknown address each time, so neither the
-- per-account back-off nor a cache stops it and every request costs a full bcrypt check
-- (authapp checks a dummy hash for unknown accounts; so does the baseline).
-- wrk ... -s flood.lua URL -- NONCE
local common = dofile(os.getenv("BENCH_LUA") .. "/common.lua")
setup, done, response = common.setup, common.done, common.count

local nonce, sent = nil, 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  nonce = args[1]
end

function request()
  sent = sent + 1
  local body = string.format(
    '{"login": "flood-%s-%d-%d@example.com", "password": "not the password of anyone here"}',
    nonce, thread_id, sent
  )
  return wrk.format("POST", "/api/v1/auth/login", headers, body)
end
