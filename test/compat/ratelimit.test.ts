// @upstash/ratelimit (2.2.0, from npm) through @upstash/redis against the
// gateway: its Lua scripts start "#!lua flags=allow-key-locking", which Redis
// 7.0 refuses unless the gateway strips the flag; it calls EVALSHA with the
// SHA-1 of the original script and falls back to EVAL on NOSCRIPT.
// Copied next to the suite's tests by test/compat/run.sh.
import { describe, expect, test } from "bun:test";
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "../platforms/nodejs";

const redis = Redis.fromEnv();

describe("redishttp: @upstash/ratelimit", () => {
  const limiters = {
    fixedWindow: Ratelimit.fixedWindow(3, "30 s"),
    slidingWindow: Ratelimit.slidingWindow(3, "30 s"),
    tokenBucket: Ratelimit.tokenBucket(1, "30 s", 3),
  };
  for (const [name, limiter] of Object.entries(limiters)) {
    test(`${name} allows 3 of 5 requests`, async () => {
      const rl = new Ratelimit({ redis, limiter, prefix: `redishttp-${name}-${Math.random()}` });
      const got: boolean[] = [];
      for (let i = 0; i < 5; i++) {
        got.push((await rl.limit("user")).success);
      }
      expect(got).toEqual([true, true, true, false, false]);
      // The scripts are known now: EVALSHA of the client's SHA-1 works.
      expect((await rl.getRemaining("user")).remaining).toBe(0);
    });
  }
});
