/**
 * The bazaar discovery extension of a 402 (x402 v2 `extensions.bazaar`): how to call the paid
 * route (method, input) and what it answers, so a crawler or an agent learns the route's
 * interface from the 402 itself. Built with @x402/extensions' `declareDiscoveryExtension`, then
 * `bazaarResourceServerExtension.enrichDeclaration` adds the request's method, exactly as an
 * @x402/core resource server would. Pure.
 *
 * Inference offers get the OpenAI chat-completions schema on their chat route; other routes and
 * `http` offers declare the method with open input (the gateway does not know an upstream's
 * API beyond its routes).
 */
import { bazaarResourceServerExtension, declareDiscoveryExtension } from "@x402/extensions/bazaar";
import type { ServiceOfferSpec } from "../../api/resources";

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);
const QUERY_METHODS = new Set(["GET", "HEAD", "DELETE"]);

const CHAT_INPUT_SCHEMA = {
  properties: {
    model: { type: "string", description: "The offer's model" },
    messages: {
      type: "array",
      items: {
        type: "object",
        properties: {
          role: { type: "string", enum: ["system", "user", "assistant", "tool"] },
          content: { type: "string" },
        },
        required: ["role", "content"],
      },
    },
    stream: { type: "boolean" },
    max_tokens: { type: "integer", minimum: 1 },
    temperature: { type: "number" },
  },
  required: ["model", "messages"],
};

const CHAT_OUTPUT_SCHEMA = {
  properties: {
    id: { type: "string" },
    object: { type: "string" },
    model: { type: "string" },
    choices: {
      type: "array",
      items: {
        type: "object",
        properties: {
          index: { type: "integer" },
          message: {
            type: "object",
            properties: { role: { type: "string" }, content: { type: "string" } },
          },
          finish_reason: { type: "string" },
        },
      },
    },
    usage: { type: "object" },
  },
  required: ["choices"],
};

function declaration(spec: ServiceOfferSpec, method: string, subPath: string): Record<string, unknown> {
  if (spec.type === "inference" && method === "POST" && /\/chat\/completions$/.test(subPath)) {
    const model = spec.model?.name ?? "default";
    return declareDiscoveryExtension({
      bodyType: "json",
      input: { model, messages: [{ role: "user", content: "Hello!" }] },
      inputSchema: CHAT_INPUT_SCHEMA,
      output: {
        example: {
          object: "chat.completion",
          model,
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: "Hello! How can I help?" },
              finish_reason: "stop",
            },
          ],
        },
        schema: CHAT_OUTPUT_SCHEMA,
      },
    });
  }
  if (BODY_METHODS.has(method)) return declareDiscoveryExtension({ bodyType: "json", input: {} });
  return declareDiscoveryExtension({});
}

/**
 * `extensions.bazaar` for a 402 answering `method` on `subPath`; undefined for methods the
 * bazaar cannot describe (OPTIONS).
 */
export function discoveryExtensions(
  spec: ServiceOfferSpec,
  method: string,
  subPath: string,
): Record<string, unknown> | undefined {
  const upper = method.toUpperCase();
  if (!BODY_METHODS.has(upper) && !QUERY_METHODS.has(upper)) return undefined;
  const declared = declaration(spec, upper, subPath);
  const enrich = bazaarResourceServerExtension.enrichDeclaration;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(declared)) {
    // The transport context @x402/core's HTTP server passes: the method and the request path.
    out[key] = enrich ? enrich(value, { method: upper, adapter: { getPath: () => subPath } }) : value;
  }
  return out;
}
