-- wrk script for kvserver: 90% GET / 10% PUT over uniformly chosen keys
-- k0..k<items-1>, PUT bodies of value_size bytes.
--   wrk -c16 -d10s -s kv.lua http://127.0.0.1:8080 -- <items> <value_size> [put_percent]
local items = 200000
local put_percent = 10
local body

function init(args)
   items = tonumber(args[1] or items)
   local size = tonumber(args[2] or 1024)
   put_percent = tonumber(args[3] or put_percent)
   body = string.rep("w", size)
   -- Each wrk thread has its own Lua state; seed them differently.
   math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
   local path = "/k/k" .. math.random(0, items - 1)
   if math.random(100) <= put_percent then
      return wrk.format("PUT", path, nil, body)
   end
   return wrk.format("GET", path)
end
