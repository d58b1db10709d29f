-- Read shared records (common.lua) without renewing anything. KEYS[4..] the records.
-- Returns, per record, its HGETALL (empty when it does not exist).
local out = {}
for k = 4, #KEYS do
  out[#out + 1] = redis.call('HGETALL', KEYS[k])
end
return out
