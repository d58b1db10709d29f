-- Remove and return the newest item of a session, renewing it: a data write when an
-- item goes, so the version goes up by one. KEYS[4] session key, KEYS[5] its item list.
-- ARGV: id, ttl_us, lifetime_us, key base, write token. The session's size loses what
-- the item added (and the list's own overhead with the last item).
-- Returns the item, or false when the session is gone, has no items, or holds this
-- very call's write (a retry after a lost reply: the item was already popped).
local id, ttl, lifetime, base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local head = peek(KEYS[4])
if not head then
  return false
end
local version, born, stored_token = parse_header(head)
if stored_token == ARGV[5] then
  return false
end
local now = now_us()
born = born or tonumber(redis.call('ZSCORE', BORN, id)) or now
local px = pttl_for(now, born, ttl, lifetime)
if px <= 0 then
  remove(base, {id})
  return false
end
redis.call('ZADD', LRU, fmt(now), id)
note_ttl(ttl)
local had = tonumber(redis.call('HGET', SIZES, id) or '0')
local part = item_part(id, KEYS[5])
local item = redis.call('RPOP', KEYS[5])
if item then
  local left = 0
  if redis.call('LLEN', KEYS[5]) > 0 then
    left = math.max(0, part - #item - ITEM_OVERHEAD)
  end
  set_item_part(id, left)
  account(id, math.max(0, had - part) + left)
  rewrite(KEYS[4], (version or 0) + 1, born, ARGV[5], false, px_ms(px))
else
  redis.call('PEXPIRE', KEYS[4], px_ms(px))
end
return item
