// obol-stack: sell inference or any HTTP API to agents for x402 micropayments.
// Configuration lives in Pulumi.<stack>.yaml; see the README's config reference.
import { loadStackConfig } from "./program/config/load";
import { deployStack } from "./program/stack";

const outputs = deployStack(loadStackConfig());

export const publicUrl = outputs.publicUrl;
export const offerEndpoints = outputs.offers;
export const gatewayService = outputs.gatewayService;
export const liteLLMService = outputs.liteLLMService;
export const namespace = outputs.namespace;
export const agentIds = outputs.agentIds;
