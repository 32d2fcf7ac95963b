-- wrk script: GET /api/users/{random demo user}/recommendations?k=10. USERS: how many demo users (user0 .. user{USERS-1}).
package.path = (os.getenv("WRK_SCRIPTS") or ".") .. "/?.lua;" .. package.path
require("summary")
local users = tonumber(os.getenv("USERS") or "1000")
math.randomseed(os.time())

request = function()
  count_sent()
  return wrk.format("GET", "/api/users/user" .. math.random(0, users - 1) .. "/recommendations?k=10")
end

response = function(status, headers, body)
  count_answered()
  if status == 200 then count_shown(body, '"itemId"') end
end
