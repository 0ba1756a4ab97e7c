/**
 * The agent image when the operator sets none: ERC-8004 says a registration document SHOULD carry
 * `image` (a URI) for ERC-721 apps, so there is always one. A data: URI, so nothing else is served.
 */
export const DEFAULT_AGENT_IMAGE =
  "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCA2NCA2NCI+PHJlY3Qgd2lkdGg9IjY0IiBoZWlnaHQ9IjY0IiByeD0iMTIiIGZpbGw9IiMxZjI5MzciLz48Y2lyY2xlIGN4PSIzMiIgY3k9IjI1IiByPSIxMCIgZmlsbD0iI2U1ZTdlYiIvPjxyZWN0IHg9IjE2IiB5PSIzOSIgd2lkdGg9IjMyIiBoZWlnaHQ9IjE1IiByeD0iNyIgZmlsbD0iI2U1ZTdlYiIvPjwvc3ZnPg==";
