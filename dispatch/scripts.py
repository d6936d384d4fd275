"""The Lua scripts behind `dispatch.presence`: each change of a driver's
presence is one script, so it is atomic and one round trip. Their KEYS and
ARGV are documented above each; `dispatch.presence` builds them, and
`dispatch.keys` names the keys and the driver hash's fields.
"""

import hashlib

from redis.exceptions import NoScriptError


class Lua:
    """A Lua script run by its SHA, loaded into whichever server lacks it
    (redis-py's `register_script` binds a client; this takes one per call,
    so the sync client and every per-loop async client share one object)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def __call__(self, client, keys_: list[str], args: list) -> object:
        try:
            return client.evalsha(self.sha, len(keys_), *keys_, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys_), *keys_, *args)

    async def run_async(self, client, keys_: list[str], args: list) -> object:
        try:
            return await client.evalsha(self.sha, len(keys_), *keys_, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys_), *keys_, *args)


# Shared by the scripts that take a position from the driver (a ping, going
# online): the speed check (LOCATION_MAX_SPEED_KMH) and what follows from it.
#
# judge(a, lng, lat, now, speed m/s, jitter m, memory s) compares the new
# position with `a`, the hash's fix_lng, fix_lat, fix_at: the position the
# check measures from and its time. It answers
#   'move': reachable at the top speed; the check measures from here on;
#   'keep': reachable only with the jitter allowance: the position is used,
#           but the check keeps measuring from the old one, so allowances
#           cannot add up ping after ping into a drive no car makes;
#   'far', metres, seconds: an impossible move, refused.
# No fix, or one older than the memory (LOCATION_MEMORY_S), and anything
# goes: a driver is never locked out for longer than that.
POSITION_CHECK = """
local function judge(a, lng, lat, now, speed, jitter, memory)
  if speed <= 0 or not a[3] then return 'move' end
  local dt = now - tonumber(a[3])
  if dt >= memory then return 'move' end
  if dt < 0 then dt = 0 end
  local rad = math.pi / 180
  local p1, p2 = tonumber(a[2]) * rad, lat * rad
  local s = math.sin((p2 - p1) / 2) ^ 2
    + math.cos(p1) * math.cos(p2) * math.sin((lng - tonumber(a[1])) * rad / 2) ^ 2
  local d = 2 * 6372797.560856 * math.asin(math.min(1, math.sqrt(s)))
  if d <= speed * dt then return 'move' end
  if d <= speed * dt + jitter then return 'keep' end
  return 'far', d, dt
end

-- One HSET whatever the verdict (the hot path): 'seen' and the position,
-- and the fix when it moves.
local function accept(h, verdict, lng, lat, now, held)
  if verdict == 'move' then
    redis.call('HSET', h, 'seen', now, 'lng', lng, 'lat', lat,
               'fix_lng', lng, 'fix_lat', lat, 'fix_at', now)
  else
    redis.call('HSET', h, 'seen', now, 'lng', lng, 'lat', lat)
  end
  if held then redis.call('HDEL', h, 'held') end
end

-- Where the driver is, is in doubt: out of matching until a position passes
-- (the hash keeps the last accepted one), and the day's count grows.
local function refuse(h, now, available, counter, member, counter_ttl, d, dt)
  redis.call('HSET', h, 'seen', now, 'held', '1')
  redis.call('ZREM', available, member)
  redis.call('ZINCRBY', counter, 1, member)
  redis.call('EXPIRE', counter, counter_ttl)
  return {'far', tostring(d), tostring(dt)}
end
"""

# KEYS: available, last_seen, driver hash, the day's refused-position count.
# ARGV: member, lng, lat, now, driver ttl, index ttl, forward interval,
#       then the speed check's: speed m/s, jitter m, memory s, count ttl.
# Returns {'fwd', trip, rider, target lng, target lat} when this position is
# due to the rider (the target: the pick-up, or the drop-off once picked up;
# '' when unknown),
# {'far', metres, seconds} when the speed check refused it, else nil.
PING = Lua(
    POSITION_CHECK
    + """
local h = KEYS[3]
local f = redis.call('HMGET', h, 'online', 'state', 'trip', 'rider', 'fwd',
                     'fix_lng', 'fix_lat', 'fix_at', 'held', 'to_lng', 'to_lat')
local now = tonumber(ARGV[4])
local verdict, d, dt = judge({f[6], f[7], f[8]}, tonumber(ARGV[2]), tonumber(ARGV[3]), now,
                             tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]))
if f[1] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
if verdict == 'far' then
  local refused = refuse(h, ARGV[4], KEYS[1], KEYS[4], ARGV[1], ARGV[11], d, dt)
  redis.call('EXPIRE', h, ARGV[5])
  return refused
end
accept(h, verdict, ARGV[2], ARGV[3], ARGV[4], f[9])
redis.call('EXPIRE', h, ARGV[5])
if f[1] == '1' and (not f[2] or f[2] == 'free') then
  redis.call('GEOADD', KEYS[1], ARGV[2], ARGV[3], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
if f[2] == 'on_trip' and f[3] then
  if now - tonumber(f[5] or '0') >= tonumber(ARGV[7]) then
    redis.call('HSET', h, 'fwd', ARGV[4])
    return {'fwd', f[3], f[4] or '', f[10] or '', f[11] or ''}
  end
end
return false
"""
)

# KEYS: available, last_seen, driver hash, the day's refused-position count.
# ARGV: member, lng, lat, now, driver ttl, index ttl, state, trip, rider,
#       then the speed check's: speed m/s, jitter m, memory s, count ttl,
#       then the products served (',standard,xl,'; '' for the default only)
#       and the trip's target lng, lat ('' when none).
# Returns {'far', metres, seconds} when the speed check refused the position
# (the driver is online, but out of matching), else nil.
ONLINE = Lua(
    POSITION_CHECK
    + """
local h = KEYS[3]
local a = redis.call('HMGET', h, 'fix_lng', 'fix_lat', 'fix_at', 'held')
local verdict, d, dt = judge(a, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
                             tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]))
redis.call('HSET', h, 'online', '1', 'seen', ARGV[4], 'state', ARGV[7])
if verdict ~= 'far' then accept(h, verdict, ARGV[2], ARGV[3], ARGV[4], a[4]) end
if ARGV[14] == '' then
  redis.call('HDEL', h, 'products')
else
  redis.call('HSET', h, 'products', ARGV[14])
end
if ARGV[7] == 'on_trip' then
  redis.call('HSET', h, 'trip', ARGV[8], 'rider', ARGV[9])
  if ARGV[15] ~= '' then
    redis.call('HSET', h, 'to_lng', ARGV[15], 'to_lat', ARGV[16])
  else
    redis.call('HDEL', h, 'to_lng', 'to_lat')
  end
else
  redis.call('HDEL', h, 'trip', 'rider', 'fwd', 'to_lng', 'to_lat')
end
redis.call('EXPIRE', h, ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[6])
if verdict == 'far' then
  return refuse(h, ARGV[4], KEYS[1], KEYS[4], ARGV[1], ARGV[13], d, dt)
end
if ARGV[7] == 'free' then
  redis.call('GEOADD', KEYS[1], ARGV[2], ARGV[3], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return false
"""
)

# KEYS: available, last_seen, driver hash. ARGV: member, driver ttl.
OFFLINE = Lua("""
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'online', '0')
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
""")

# KEYS: available, driver hash, waiting, waiting product.
# ARGV: member, driver ttl, the trip offered ('' when unknown).
# An offered driver leaves the available set; one on a trip stays on it. The
# trip, offered, no longer waits for supply.
OFFERED = Lua("""
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[2], 'state') ~= 'on_trip' then
  redis.call('HSET', KEYS[2], 'state', 'offered')
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('HDEL', KEYS[4], ARGV[3])
end
return 1
""")

# KEYS: available, driver hash. ARGV: member, driver ttl, trip, rider,
# the pick-up's lng, lat ('' when unknown).
# Returns 0, changing nothing, when that trip has already ended: its release
# (after a cancel, say) ran first, and the late assign must not undo it.
ASSIGNED = Lua("""
if redis.call('HGET', KEYS[2], 'ended') == ARGV[3] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'state', 'on_trip', 'trip', ARGV[3], 'rider', ARGV[4], 'fwd', '0')
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], 'to_lng', ARGV[5], 'to_lat', ARGV[6])
else
  redis.call('HDEL', KEYS[2], 'to_lng', 'to_lat')
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
""")

# KEYS: available, last_seen, driver hash.
# ARGV: member, now, presence ttl, driver ttl, index ttl, the trip that ended ('' for an offer).
# Returns 1 when the driver is back in the available set (not while the speed
# check holds their position in doubt: their next plausible ping brings them back).
RELEASED = Lua("""
local h = KEYS[3]
if redis.call('EXISTS', h) == 0 then return 0 end
redis.call('HSET', h, 'state', 'free')
if ARGV[6] ~= '' then redis.call('HSET', h, 'ended', ARGV[6]) end
redis.call('HDEL', h, 'trip', 'rider', 'fwd', 'to_lng', 'to_lat')
redis.call('EXPIRE', h, ARGV[4])
local f = redis.call('HMGET', h, 'online', 'lng', 'lat', 'held')
if f[1] ~= '1' or not f[2] or not f[3] or f[4] then return 0 end
local seen = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not seen or tonumber(ARGV[2]) - tonumber(seen) >= tonumber(ARGV[3]) then return 0 end
redis.call('GEOADD', KEYS[1], f[2], f[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
""")

# KEYS: available, last_seen.
# ARGV: lng, lat, radius km, count, product ('' for any), the default product,
#       the driver hashes' key prefix.
# Returns {member, distance km, last seen or nil} nearest first, every member
# found: one not eligible for the product (its hash's `products` does not
# list it; no list means the default product only) comes with nil, like a
# stale one, so the caller still sees a full page and knows to widen.
SEARCH = Lua("""
local found = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
                         'BYRADIUS', ARGV[3], 'km', 'ASC', 'COUNT', ARGV[4], 'WITHDIST')
local wanted = ',' .. ARGV[5] .. ','
local out = {}
for i, hit in ipairs(found) do
  local seen = redis.call('ZSCORE', KEYS[2], hit[1])
  if ARGV[5] ~= '' and seen then
    local serves = redis.call('HGET', ARGV[7] .. hit[1], 'products')
    if serves then
      if not string.find(serves, wanted, 1, true) then seen = false end
    elseif ARGV[5] ~= ARGV[6] then
      seen = false
    end
  end
  out[i] = {hit[1], hit[2], seen}
end
return out
""")

# KEYS: driver hash. ARGV: products (',standard,xl,'; '' for the default only).
# A driver's vehicle changed: eligibility follows at once if they are online
# (otherwise going online writes it).
PRODUCTS = Lua("""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then
  redis.call('HDEL', KEYS[1], 'products')
else
  redis.call('HSET', KEYS[1], 'products', ARGV[1])
end
return 1
""")

# KEYS: driver hash. ARGV: trip, target lng, lat ('' to clear).
# The driver on `trip` now heads for another place (the drop-off once the
# rider is in): `driver.location`'s ETA follows.
TARGET = Lua("""
if redis.call('HGET', KEYS[1], 'trip') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'to_lng', 'to_lat')
else
  redis.call('HSET', KEYS[1], 'to_lng', ARGV[2], 'to_lat', ARGV[3])
end
return 1
""")

# KEYS: available, last_seen. ARGV: cutoff, batch.
# Drivers not heard from since `cutoff` leave both sets; returns their ids.
SWEEP_SILENT = Lua("""
local silent = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
for _, member in ipairs(silent) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
end
return silent
""")

# KEYS: waiting, waiting product, the driver hash.
# ARGV: radius km, the default product, count.
# The trips waiting for supply near a driver who just became free, nearest
# first, that the driver may serve (their `products`; none listed: the
# default product only). Returns trip ids.
WAKE = Lua("""
local f = redis.call('HMGET', KEYS[3], 'lng', 'lat', 'products')
if not f[1] or not f[2] then return {} end
local found = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', f[1], f[2],
                         'BYRADIUS', ARGV[1], 'km', 'ASC', 'COUNT', 16)
local out = {}
for _, trip in ipairs(found) do
  local product = redis.call('HGET', KEYS[2], trip)
  local ok
  if not product then
    ok = true
  elseif f[3] then
    ok = string.find(f[3], ',' .. product .. ',', 1, true) ~= nil
  else
    ok = product == ARGV[2]
  end
  if ok then
    out[#out + 1] = trip
    if #out >= tonumber(ARGV[3]) then break end
  end
end
return out
""")

# KEYS: a lease. ARGV: the holder's token, ms. The holder's lease runs ms
# from now; 0 when the lease is not (or no longer) that holder's.
LEASE_RENEW = Lua("""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
""")

# KEYS: a lease. ARGV: the holder's token. Deleted only by its holder.
LEASE_RELEASE = Lua("""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
""")
