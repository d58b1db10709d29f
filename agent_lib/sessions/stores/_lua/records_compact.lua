-- Cleanup of shared records, second half: KEYS[4] the set naming them, KEYS[5..] the two
-- hashes (fields, owners) of each record records_scan.lua named. ARGV: ttl_us,
-- lifetime_us, then each record's id.
-- An owner counts as live while the index holds its session, touched within the
-- longest TTL any writer used (cleanup.lua's margin: its key may live that long) and
-- not past the lifetime; other owners are dropped, and a record left without a live
-- owner (or without any entry) is removed. Returns {records removed, bytes freed}.
local ttl, lifetime = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_us()
local idle_cut = now - 2000 - math.max(ttl, tonumber(redis.call('HGET', SIZES, TTL_MAX) or '0'))
local function live(sid)
  local seen = redis.call('ZSCORE', LRU, sid)
  if not seen or tonumber(seen) <= idle_cut then
    return false
  end
  if lifetime > 0 then
    local born = redis.call('ZSCORE', BORN, sid)
    return born ~= false and tonumber(born) + lifetime > now
  end
  return true
end
local removed, freed = 0, 0
for k = 5, #KEYS, 2 do
  local key, owners_key, rid = KEYS[k], KEYS[k + 1], ARGV[3 + (k - 5) / 2]
  local owners, lost = 0, 0
  local flat = redis.call('HGETALL', owners_key)
  for i = 1, #flat, 2 do
    if live(flat[i]) then
      owners = owners + 1
    else
      redis.call('HDEL', owners_key, flat[i])
      lost = lost + entry_cost(flat[i], flat[i + 1])
    end
  end
  if owners == 0 then
    freed = freed + drop_record(KEYS[4], key, owners_key, rid)
    removed = removed + 1
  elseif lost > 0 then
    redis.call('HINCRBY', SIZES, RSIZE .. rid, fmt(-lost))
    redis.call('HINCRBY', SIZES, TOTAL, fmt(-lost))
    freed = freed + lost
  end
end
return {removed, freed}
