import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { AGENT_IDENTITY_NAME, KINDS } from "../api/contract";
import { API_VERSION } from "../api/resources";
import { labelsFor } from "./labels";
import { childOf, formerly } from "./naming";

export interface AgentIdentityArgs {
  namespace: pulumi.Input<string>;
  name: string;
  description: string;
  image?: string;
  /** On-chain registrations (from the ERC-8004 registration resources). */
  registrations: pulumi.Input<pulumi.Input<{ network: string; agentId: string; registry: string }>[]>;
}

/** The namespace's AgentIdentity custom resource, which the gateway renders agent-registration.json from. */
export class AgentIdentity extends pulumi.ComponentResource {
  constructor(name: string, args: AgentIdentityArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:AgentIdentity", name, {}, opts);
    new k8s.apiextensions.CustomResource(
      name,
      {
        apiVersion: API_VERSION,
        kind: KINDS.agentIdentity.kind,
        metadata: {
          namespace: args.namespace,
          name: AGENT_IDENTITY_NAME,
          labels: labelsFor("agent-identity"),
        },
        spec: {
          name: args.name,
          description: args.description,
          ...(args.image ? { image: args.image } : {}),
          registrations: args.registrations,
        },
      },
      childOf(this, name, formerly(name, "identity", "agent-identity")),
    );
    this.registerOutputs({});
  }
}
