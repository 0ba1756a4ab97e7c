/**
 * JSON text with exact integers. JSON numbers have no size limit, JavaScript numbers do: an
 * ERC-8004 agentId (uint256) or a 64-bit chain id above 2^53 must never pass through `Number`.
 * Bigints are written as integer literals, digit for digit. Pure, no imports: the ERC-8004
 * provider's closure carries it by value.
 */
export function exactJson(value: unknown, indent?: number): string {
  // A marker no real string contains, so only bigints are unquoted.
  const mark = `~exact-int-${Math.random().toString(36).slice(2)}~`;
  const text = JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? `${mark}${v}` : v), indent);
  return text.split(`"${mark}`).reduce((out, part) => out + part.replace(/^(-?[0-9]+)"/, "$1"));
}
