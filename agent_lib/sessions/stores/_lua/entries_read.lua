-- Read a session's entries under a name prefix (agent_lib.sessions.stores.entries) and
-- renew it, like items_read.lua. KEYS[4] session key, KEYS[5] its entry set. ARGV: a
-- header 'ttl_us lifetime_us latest-group(1/0) renew(1/0) id', prefix. With latest
-- group, only the entries of the newest group under the prefix: the last name under
-- it, cut after its first GROUP_END past the prefix, as a prefix of its own; two range
-- reads of O(log n + found). Returns {created, now, version, {name, value, ...}} (split
-- here: the client then copies no value) or false when the session is gone.
local ttl, lifetime, latest, renew, id = string.match(ARGV[1], '^(%d+) (%d+) (%d) (%d) (%S+)$')
ttl, lifetime = tonumber(ttl), tonumber(lifetime)
local prefix = ARGV[2]
local base = string.sub(KEYS[4], 1, #KEYS[4] - #id)
local value = peek(KEYS[4])
if not value then
  return false
end
local now = now_us()
local version, born = parse_header(value)
if not born then
  born = tonumber(redis.call('ZSCORE', BORN, id))
  if not born then
    born = now
    redis.call('ZADD', BORN, fmt(now), id)
  end
end
local px = pttl_for(now, born, ttl, lifetime)
if px <= 0 then
  remove(base, {id})
  return false
end
if renew ~= '0' then
  redis.call('PEXPIRE', KEYS[4], px_ms(px))
  redis.call('ZADD', LRU, fmt(now), id)
  note_ttl(ttl)
end
if latest == '1' then
  local last = redis.call('ZREVRANGEBYLEX', KEYS[5], '(' .. prefix .. '\255', '[' .. prefix, 'LIMIT', 0, 1)[1]
  local cut = false
  if last then
    local name_end = string.find(last, '\0', 1, true)
    cut = string.find(string.sub(last, 1, name_end - 1), GROUP_END, #prefix + 1, true)
  end
  if not cut then
    return {born, now, version or 0, {}}
  end
  prefix = string.sub(last, 1, cut)
end
local found = {}
for i, member in ipairs(redis.call('ZRANGEBYLEX', KEYS[5], '[' .. prefix, '(' .. prefix .. '\255')) do
  local at = string.find(member, '\0', 1, true)
  found[2 * i - 1] = string.sub(member, 1, at - 1)
  found[2 * i] = string.sub(member, at + 1)
end
return {born, now, version or 0, found}
