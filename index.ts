// obol-stack: sell inference or any HTTP API to agents for x402 micropayments.
// Configuration lives in Pulumi.<stack>.yaml; see the README's config reference.
import { loadStackConfig } from "./program/config/load";
import { deployStack } from "./program/stack";

// The stack outputs: the resolved object's properties.
export = deployStack(loadStackConfig()).then((outputs) => ({
  publicUrl: outputs.publicUrl,
  offerEndpoints: outputs.offers,
  gatewayService: outputs.gatewayService,
  liteLLMService: outputs.liteLLMService,
  namespace: outputs.namespace,
  agentIds: outputs.agentIds,
  /** The ServiceMonitor/PodMonitor objects created (monitoring.serviceMonitors), e.g. "ServiceMonitor/x402-gateway". */
  monitoring: outputs.monitoring,
}));
