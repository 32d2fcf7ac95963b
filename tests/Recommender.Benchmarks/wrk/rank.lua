-- wrk script: POST /personalizer/v1.0/rank with ACTIONS distinct actions (of ITEMS demo items) and a random demo user's context.
package.path = (os.getenv("WRK_SCRIPTS") or ".") .. "/?.lua;" .. package.path
require("summary")
local users = tonumber(os.getenv("USERS") or "1000")
local actions = tonumber(os.getenv("ACTIONS") or "10")
local items = tonumber(os.getenv("ITEMS") or "500")
math.randomseed(os.time())
local devices = { "mobile", "desktop", "tablet" }

request = function()
  count_sent()
  local list, chosen = {}, {}
  while #list < actions do -- distinct action ids, as the API requires
    local item = math.random(1, items)
    if not chosen[item] then
      chosen[item] = true
      list[#list + 1] = string.format('{"id":"item%d","features":[{"slot":"s%d"}]}', item, #list + 1)
    end
  end
  local body = string.format('{"contextFeatures":[{"userId":"user%d"},{"device":"%s"}],"actions":[%s]}',
    math.random(0, users - 1), devices[math.random(1, #devices)], table.concat(list, ","))
  return wrk.format("POST", "/personalizer/v1.0/rank", { ["Content-Type"] = "application/json", ["Ocp-Apim-Subscription-Key"] = "bench" }, body)
end

-- every action ranked with a probability above 0 is an impression (none is excluded here)
response = function(status, headers, body)
  count_answered()
  if status == 201 then
    local _, ranked = string.gsub(body, '"probability":', "")
    local _, never = string.gsub(body, '"probability":0[,}]', "")
    shown = shown + ranked - never
  end
end
