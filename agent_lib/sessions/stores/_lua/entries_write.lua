-- Drop and put named entries of a session (agent_lib.sessions.stores.entries), creating
-- the session when it does not exist (or has ended), in one script: a data write, so
-- the session's version goes up by one. Entries are the members 'name \0 value' of a
-- sorted set (all scores 0, so in name order) in the session's item key.
-- KEYS[4] session key, KEYS[5] its entry set, then, when records are written, the set
-- naming records and each record's two hashes (common.lua's write_records), then the
-- sessions this write may remove to stay under the caps, in pairs of key and item key
-- (none on the first call). ARGV: a header of space-separated fields (ttl_us,
-- lifetime_us, max_sessions, max_memory, payload size, eviction budget, mode 'keep' |
-- 'update' (only on a live session), records only on creation (1/0), n candidates,
-- n drops, '-' followed by each put's replace flag ('1' or '0'), the number of record
-- writes, id, write token), payload, the LRU score of each of the n candidates, each
-- record write (as write_records reads them), each prefix to drop, then each put's
-- name and value (joined here: a copy of a large value costs the client more than the
-- server, which has time to spare while the client packs and parses).
-- The session's accounted bytes are its payload's estimate plus its item part
-- (common.lua's item_part), here the entries' costs plus SET_OVERHEAD while any.
-- Returns {1, created, now, count, evicted, version}; {-1} when the session alone
-- would exceed max_memory; {0} when mode 'update' found no live session; {3, ids,
-- scores} when room is needed: call again declaring those sessions. Nothing is
-- written unless 1.
local h = {}
for field in string.gmatch(ARGV[1], '%S+') do
  h[#h + 1] = field
end
local ttl, lifetime = tonumber(h[1]), tonumber(h[2])
local max_sessions, max_memory, size = tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
local budget, update, on_create = tonumber(h[6]), h[7] == 'update', h[8] == '1'
local n_drops, flags, n_records = tonumber(h[10]), h[11], tonumber(h[12])
local id, token = h[13], h[14]
local base = string.sub(KEYS[4], 1, #KEYS[4] - #id)
local SCORES = 3
local RECORDS_AT = SCORES + tonumber(h[9])
local DROPS = RECORDS_AT
for _ = 1, n_records do
  DROPS = DROPS + 5 + 2 * tonumber(ARGV[DROPS + 4])
end
local PUTS = DROPS + n_drops
local CANDIDATES = 6
if n_records > 0 then
  CANDIDATES = 7 + 2 * n_records
end
local SET = KEYS[5]
local now = now_us()
local head = peek(KEYS[4])
local version, born, stored_token
if head then
  version, born, stored_token = parse_header(head)
  if stored_token == token then
    -- this very call's write, retried after a lost reply: it is already applied
    return {1, born, now, redis.call('ZCARD', SET), 0, version}
  end
end
local px, live = 0, false
if head then
  version = version or 0
  born = born or tonumber(redis.call('ZSCORE', BORN, id)) or now
  px = pttl_for(now, born, ttl, lifetime)
  live = px > 0
end
if not live and update then
  return {0}
end
if not live and redis.call('HEXISTS', SIZES, id) == 1 then
  -- expired, ended or never indexed: its old entries go with it, noted as expired
  local freed = remove(base, {id})
  redis.call('HINCRBY', SIZES, DROPPED, 1)
  redis.call('HINCRBY', SIZES, EVICTED_BYTES, freed)
end
local function cost(member)
  return #member + ENTRY_OVERHEAD
end
local function dropped(member)
  for d = DROPS, DROPS + n_drops - 1 do
    if string.sub(member, 1, #ARGV[d]) == ARGV[d] then
      return true
    end
  end
  return false
end
-- What the write does, worked out before anything changes (a cap may refuse it).
local had, part, data, count = 0, 0, size, 0
local gone, replaced, delta = {}, {}, 0
if live then
  had = tonumber(redis.call('HGET', SIZES, id) or '0')
  part = item_part(id, SET)
  data = math.max(0, had - part)
  count = redis.call('ZCARD', SET)
  local seen = {}  -- prefixes may overlap: each member goes once
  for d = DROPS, DROPS + n_drops - 1 do
    for _, member in ipairs(redis.call('ZRANGEBYLEX', SET, '[' .. ARGV[d], '(' .. ARGV[d] .. '\255')) do
      if not seen[member] then
        seen[member] = true
        gone[#gone + 1] = member
        delta = delta - cost(member)
      end
    end
  end
end
count = count - #gone
local puts = {}
for p = PUTS, #ARGV, 2 do
  local name = ARGV[p]
  local member = name .. '\0' .. ARGV[p + 1]
  local replace = string.byte(flags, (p - PUTS) / 2 + 2) == 49
  local old = false
  if live then
    old = redis.call('ZRANGEBYLEX', SET, '[' .. name .. '\0', '(' .. name .. '\1', 'LIMIT', 0, 1)[1]
    if old and dropped(old) then
      old = false
    end
  end
  if not old then
    puts[#puts + 1] = member
    delta, count = delta + cost(member), count + 1
  elseif replace then
    replaced[#replaced + 1] = old
    puts[#puts + 1] = member
    delta = delta + cost(member) - cost(old)
  end
end
local entry_sum = 0
if part > 0 then
  entry_sum = part - SET_OVERHEAD
end
entry_sum = entry_sum + delta
part = 0
if count > 0 then
  part = entry_sum + SET_OVERHEAD
end
local new = data + part
if max_memory > 0 and new > max_memory then
  return {-1}
end
local grow = new - had
local cap_n, adding, keep = max_sessions, 1, false
if live then
  cap_n, adding, keep = 0, 0, id
end
local evicted = 0
if over_caps(cap_n, max_memory, adding, grow) then
  if #KEYS < CANDIDATES then
    local ids = room_candidates(now, ttl, lifetime, cap_n, max_memory, adding, grow, keep, budget)
    if #ids[1] > 0 then
      return {3, ids[1], ids[2]}
    end
  else
    evicted = make_room(base, now, lifetime, cap_n, max_memory, adding, grow, CANDIDATES, SCORES)
  end
end
if live then
  version = version + 1
  rewrite(KEYS[4], version, born, token, false, px_ms(px))
  redis.call('ZADD', BORN, 'NX', fmt(born), id)
  each_chunk(gone, function(...)
    redis.call('ZREM', SET, ...)
  end)
  each_chunk(replaced, function(...)
    redis.call('ZREM', SET, ...)
  end)
else
  redis.call('UNLINK', SET)
  born, version = now, 1
  local new_px = px_ms(pttl_for(now, now, ttl, lifetime))
  redis.call('SET', KEYS[4], header(1, now, token) .. ARGV[2], 'PX', new_px)
  redis.call('ZADD', BORN, fmt(now), id)
end
for p = 1, #puts do
  redis.call('ZADD', SET, 0, puts[p])
end
set_item_part(id, part)
note_ttl(ttl)
redis.call('ZADD', LRU, fmt(now), id)
account(id, new)
if n_records > 0 and not (live and on_create) then
  write_records(KEYS[6], 7, RECORDS_AT, n_records, id)
end
return {1, born, now, count, evicted, version}
