/**
 * JSON Schemas the catalogs are validated against in tests, written from the specs rather than
 * from our renderers: ERC-8004 registration-v1 and the structural core of OpenAPI 3.1.
 */
export const REGISTRATION_V1_SCHEMA = {
  type: "object",
  required: ["type", "name", "description", "services", "x402Support", "active", "registrations"],
  properties: {
    type: { const: "https://eips.ethereum.org/EIPS/eip-8004#registration-v1" },
    name: { type: "string", minLength: 1 },
    description: { type: "string" },
    image: { type: "string", pattern: "^(https?|ipfs|data):" },
    services: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "endpoint"],
        properties: {
          name: { type: "string", minLength: 1 },
          endpoint: { type: "string", minLength: 1 },
          version: { type: "string" },
        },
      },
    },
    x402Support: { type: "boolean" },
    active: { type: "boolean" },
    registrations: {
      type: "array",
      items: {
        type: "object",
        required: ["agentId", "agentRegistry"],
        additionalProperties: false,
        properties: {
          agentId: { type: "integer", minimum: 0 },
          agentRegistry: { type: "string", pattern: "^eip155:[0-9]+:0x[0-9a-fA-F]{40}$" },
        },
      },
    },
    supportedTrust: { type: "array", items: { type: "string" } },
  },
} as const;

const responseSchema = {
  type: "object",
  required: ["description"],
  properties: { description: { type: "string" }, headers: { type: "object" }, content: { type: "object" } },
};

const operationSchema = {
  type: "object",
  required: ["responses"],
  properties: {
    summary: { type: "string" },
    description: { type: "string" },
    tags: { type: "array", items: { type: "string" } },
    parameters: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "in"],
        properties: {
          name: { type: "string" },
          in: { enum: ["path", "query", "header", "cookie"] },
          required: { type: "boolean" },
        },
      },
    },
    requestBody: { type: "object", required: ["content"] },
    responses: {
      type: "object",
      minProperties: 1,
      propertyNames: { pattern: "^([1-5][0-9X]{2}|default)$" },
      additionalProperties: responseSchema,
    },
  },
};

export const OPENAPI_31_STRUCTURE_SCHEMA = {
  type: "object",
  required: ["openapi", "info", "paths"],
  properties: {
    openapi: { type: "string", pattern: "^3\\.1\\.[0-9]+$" },
    info: {
      type: "object",
      required: ["title", "version"],
      properties: { title: { type: "string" }, version: { type: "string" }, description: { type: "string" } },
    },
    servers: {
      type: "array",
      items: { type: "object", required: ["url"], properties: { url: { type: "string" } } },
    },
    paths: {
      type: "object",
      propertyNames: { pattern: "^/" },
      additionalProperties: {
        type: "object",
        propertyNames: {
          enum: [
            "get",
            "put",
            "post",
            "delete",
            "options",
            "head",
            "patch",
            "trace",
            "summary",
            "description",
            "parameters",
            "servers",
          ],
        },
        properties: {
          get: operationSchema,
          post: operationSchema,
          put: operationSchema,
          patch: operationSchema,
          delete: operationSchema,
          head: operationSchema,
          options: operationSchema,
        },
      },
    },
    components: { type: "object", properties: { schemas: { type: "object" } } },
  },
} as const;
