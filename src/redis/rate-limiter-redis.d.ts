// rate-limiter-flexible's RateLimiterRedis on its own: the package's index
// loads every store it has (Mongo, MySQL, DynamoDB, ...), about 30 modules
// and 15 ms at each start, for the one class rate-windows.ts uses.
declare module "rate-limiter-flexible/lib/RateLimiterRedis.js" {
  import { RateLimiterRedis } from "rate-limiter-flexible";

  export default RateLimiterRedis;
}
