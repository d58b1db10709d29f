-- Read shared records (common.lua) without renewing anything. KEYS[4..] each record's
-- two hashes (fields, owners). ARGV[1]: '1' to read the owners too.
-- Returns, per record, {fields' HGETALL, owners' HGETALL (empty unless asked), 1 when
-- the record exists (fields or owners) else 0}.
local out = {}
for k = 4, #KEYS, 2 do
  out[#out + 1] = read_record(KEYS[k], KEYS[k + 1], ARGV[1] == '1')
end
return out
