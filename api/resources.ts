/**
 * The custom resources of group obol.org/v1alpha1, as zod schemas. They are the contract
 * between the Pulumi program (which writes specs) and the runtime (which reads specs and writes
 * status); the CRDs' openAPIV3Schema is generated from them (api/crds.ts). These are the
 * *stored* forms: canonical CAIP-2 networks, checksummed addresses, resolved assets and paths.
 * Friendly spellings are accepted only in stack config (program/config/) and normalized there.
 */
import { z } from "zod";

/** How long a buyer's channel stays unused before the buyer withdraws its unused deposit itself. */
export const DEFAULT_WITHDRAW_AFTER_IDLE_SECONDS = 86_400;

export const GROUP = "obol.org";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

export const caip2Schema = z
  .string()
  .regex(/^eip155:[1-9][0-9]*$/, "must be a CAIP-2 network such as eip155:84532")
  .meta({ description: "CAIP-2 network id, e.g. eip155:84532" });
export const addressSchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte address")
  .meta({ description: "EIP-55 checksummed address" });
export const decimalSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]*)(\.[0-9]+)?$/, 'must be a decimal amount such as "0.001"')
  .meta({ description: 'Decimal amount in token units, e.g. "0.001"' });
/** A URL path under the public origin: no query, no `..`, no doubled slashes. */
export const pathSchema = z
  .string()
  .max(512)
  .regex(/^\/([a-zA-Z0-9_.~-]+(\/[a-zA-Z0-9_.~-]+)*)?$/, "must be an absolute path such as /services/my-api");
export const nameSchema = z
  .string()
  .min(1)
  .max(52)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, "must be a DNS label: lowercase letters, digits and '-'");

export const assetSchema = z.object({
  address: addressSchema,
  symbol: z.string().min(1).max(16),
  decimals: z.number().int().min(0).max(36),
  transferMethod: z.enum(["eip3009", "permit2"]),
  eip712Name: z.string().min(1).max(64),
  eip712Version: z.string().min(1).max(16),
  eip2612: z.boolean().optional().meta({
    description:
      "The token implements EIP-2612 permit: Permit2 buyers without an allowance approve Permit2 by signature and the facilitator submits it with the payment (eip2612GasSponsoring)",
  }),
});
export type Asset = z.infer<typeof assetSchema>;

export const priceSchema = z
  .object({
    perRequest: decimalSchema.optional(),
    perMTok: decimalSchema.optional(),
  })
  .meta({ description: "Exactly one of perRequest or perMTok, in token units" });

export const paymentSchema = z.object({
  scheme: z.literal("exact").default("exact"),
  network: caip2Schema,
  payTo: addressSchema,
  asset: assetSchema,
  price: priceSchema,
  maxTimeoutSeconds: z.number().int().min(10).max(86_400).default(300),
});
export type Payment = z.infer<typeof paymentSchema>;

export const upstreamSchema = z
  .object({
    service: z.string().max(63).optional(),
    namespace: z.string().max(63).optional(),
    port: z.number().int().min(1).max(65_535).optional(),
    url: z.string().max(2048).optional(),
    healthPath: z.string().max(512).default("/health"),
  })
  .meta({ description: "A Kubernetes Service (service, namespace, port) or a URL" });

/** A route's schemes: exact and upto (a channel is the offer's, at the offer's price). */
export const schemesSchema = z
  .array(z.enum(["exact", "upto"]))
  .min(1)
  .max(2);

/** An offer's schemes: a route's, and batch-settlement channels. */
export const offerSchemesSchema = z
  .array(z.enum(["exact", "upto", "batch-settlement"]))
  .min(1)
  .max(3);

export const routeSchema = z.object({
  path: z
    .string()
    .max(512)
    .regex(/^\/[a-zA-Z0-9/_.*-]*$/),
  gate: z.enum(["paid", "free", "auth"]).default("paid").meta({
    description:
      "paid: x402 payment; free: no gate; auth: a wallet signature (x402 sign-in-with-x), no payment",
  }),
  methods: z
    .array(z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))
    .max(7)
    .optional(),
  price: priceSchema.optional().meta({
    description:
      "This route's price instead of the offer's (paid routes only): it replaces the price of every payment option (same networks, tokens and payees)",
  }),
  schemes: schemesSchema.optional().meta({
    description: "The x402 schemes this route's 402 offers instead of the offer's `schemes`",
  }),
});

/** When the gateway claims a batch-settlement offer's vouchers on chain, and refunds idle channels. */
export const channelTermsSchema = z
  .object({
    claimIntervalSeconds: z.number().int().min(5).max(600).default(60).meta({
      description:
        "Claim and settle the vouchers received at most this long ago (default 60 s; at most 600, so a claim lands before a payer's 900 s withdrawal could take unclaimed funds back)",
    }),
    claimAmount: decimalSchema.optional().meta({
      description:
        "Claim and settle sooner once this much (token units) is charged and not claimed, across the offer's channels (default: the interval alone decides)",
    }),
    refundIdleSeconds: z.number().int().min(60).max(2_592_000).default(3600).meta({
      description:
        "Return the unused deposit of a channel without a request for this long to its payer (cooperative refund; default 1 h)",
    }),
  })
  .meta({ description: 'Claim thresholds of the "batch-settlement" scheme (channels)' });
export type ChannelTerms = z.infer<typeof channelTermsSchema>;

export const serviceOfferSpecSchema = z.object({
  type: z.enum(["inference", "http"]),
  description: z.string().max(1024).optional(),
  model: z.object({ name: z.string().min(1).max(256), runtime: z.string().max(64).optional() }).optional(),
  upstream: upstreamSchema,
  payment: paymentSchema,
  payments: z.array(paymentSchema).max(8).optional(),
  schemes: offerSchemesSchema.optional().meta({
    description:
      'x402 schemes the 402 offers (default ["exact"]). "upto" (perMTok inference offers only): the buyer signs a maximum derived from the request and is charged the tokens the upstream reports. "batch-settlement" (perRequest, EIP-3009 assets): the buyer deposits into a channel once, then pays each request with a cumulative voucher the gateway checks itself and claims in batches',
  }),
  channels: channelTermsSchema.optional(),
  path: pathSchema,
  hostname: z.string().max(253).optional(),
  routes: z.array(routeSchema).max(64).optional(),
  limits: z
    .object({
      rps: z.number().int().min(0).optional(),
      maxInFlight: z.number().int().min(0).optional(),
      perPayerRps: z.number().int().min(0).optional().meta({
        description:
          "Paid requests per second from one paying address (verified by the facilitator), across all gateway replicas; 0 or absent means no limit",
      }),
    })
    .optional(),
  listing: z
    .object({ category: z.string().max(64).optional(), weight: z.number().int().optional() })
    .optional(),
  endsAt: z.iso.datetime({ offset: true }).optional().meta({
    description:
      "When the offer stops taking new payments (RFC 3339). Requests paid before it finish; the route answers 410 offer_ended until drainSeconds later, then 404. Deleting the offer ends it at once (or here, if earlier)",
  }),
  drainSeconds: z.number().int().min(0).max(86_400).optional().meta({
    description:
      "How long an ended or deleted offer keeps its route, refusing new payments while paid requests finish (default 60)",
  }),
});
export type ServiceOfferSpec = z.infer<typeof serviceOfferSpecSchema>;
/** An x402 scheme an offer's 402 may offer. */
export type OfferScheme = NonNullable<ServiceOfferSpec["schemes"]>[number];

export const conditionSchema = z.object({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string(),
  message: z.string().optional(),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().optional(),
});
export type Condition = z.infer<typeof conditionSchema>;

export const serviceOfferStatusSchema = z.object({
  conditions: z.array(conditionSchema).optional(),
  endpoint: z.string().optional(),
  observedGeneration: z.number().int().optional(),
});

export const agentIdentitySpecSchema = z.object({
  name: z.string().min(1).max(128),
  description: z.string().max(2048).default(""),
  image: z.string().max(2048).optional(),
  registrations: z
    .array(z.object({ network: caip2Schema, agentId: z.string().regex(/^[0-9]+$/), registry: addressSchema }))
    .default([]),
});
export const agentIdentityStatusSchema = z.object({
  publishedOffers: z.array(z.string()).optional(),
  active: z.boolean().optional(),
  conditions: z.array(conditionSchema).optional(),
  observedGeneration: z.number().int().optional(),
});

/** A seller named by its ERC-8004 identity instead of a URL. */
export const purchaseAgentSchema = z
  .object({
    network: caip2Schema.meta({ description: "CAIP-2 chain of the IdentityRegistry" }),
    registry: addressSchema.meta({ description: "The IdentityRegistry holding the agent" }),
    agentId: z
      .string()
      .regex(/^(0|[1-9][0-9]*)$/)
      .max(78)
      .meta({ description: "The agent's token id (uint256, decimal)" }),
    rpcUrl: z
      .string()
      .url()
      .max(2048)
      .meta({ description: "JSON-RPC URL of the registry's chain, to read the agent's tokenURI" }),
    service: z.string().min(1).max(256).optional().meta({
      description:
        "The name of the offer in the agent's registration services[] (default: the service whose model, or name, is spec.model)",
    }),
  })
  .meta({
    description:
      "Buy from an ERC-8004 agent: tokenURI → registration document (which must name this agent) → the offer's endpoint",
  });
export type PurchaseAgent = z.infer<typeof purchaseAgentSchema>;

export const purchaseRequestSpecSchema = z
  .object({
    endpoint: z
      .string()
      .url()
      .max(2048)
      .optional()
      .meta({ description: "The seller's offer URL (or name the seller by `agent`)" }),
    agent: purchaseAgentSchema.optional(),
    model: z.string().min(1).max(256),
    payment: z.object({
      network: caip2Schema,
      asset: addressSchema.optional(),
      /** Decimals of the payment token, to read maxPrice and budgets (6 for USDC). */
      decimals: z.number().int().min(0).max(36).default(6),
      maxPrice: decimalSchema.meta({ description: "Most the buyer pays for one request, in token units" }),
      rpcUrl: z.string().url().max(2048).optional().meta({
        description:
          "A JSON-RPC URL of the network: lets the buyer pay Permit2 sellers of EIP-2612 tokens by signature when it has no Permit2 allowance (it reads its allowance and permit nonce)",
      }),
    }),
    channels: z
      .object({
        deposit: decimalSchema.optional().meta({
          description:
            "What one channel deposit (and each top-up) puts in, in token units; capped by what budget.maxTotal and budget.maxPerDay leave. Default: 100 times the seller's price",
        }),
        withdrawAfterIdleSeconds: z
          .number()
          .int()
          .min(1)
          .max(31_536_000)
          .optional()
          .meta({
            description: `When a channel has not been used for this long and the seller has not refunded its unused deposit, the buyer withdraws it itself (initiateWithdraw, then finalizeWithdraw once the channel's withdrawDelay has passed; two transactions its wallet pays gas for). Default ${DEFAULT_WITHDRAW_AFTER_IDLE_SECONDS} (a day)`,
          }),
      })
      .optional()
      .meta({
        description:
          "Pay sellers whose 402 offers x402 batch-settlement through a payment channel (a deposit, then a signed voucher per call); needs payment.rpcUrl. Absent: exact or upto only",
      }),
    budget: z.object({
      maxPerRequest: decimalSchema,
      maxPerDay: decimalSchema.optional(),
      maxTotal: decimalSchema.optional(),
      countFromBlock: z
        .string()
        .regex(/^(0|[1-9][0-9]*)$/)
        .max(78)
        .optional()
        .meta({
          description:
            "Set by the program: the block at which the purchase was created. The buyer recovers earlier spend from the chain (Transfers from its wallet to the seller since this block) when its ledger is lost",
        }),
    }),
  })
  // The CRD schema cannot say "exactly one of"; the runtime refuses such a spec with InvalidSpec.
  .refine((s) => (s.endpoint === undefined) !== (s.agent === undefined), {
    message: "set exactly one of endpoint or agent",
    path: ["endpoint"],
  });
export const purchaseRequestStatusSchema = z.object({
  conditions: z.array(conditionSchema).optional(),
  observedGeneration: z.number().int().optional(),
  /** The seller URL the buyer pays: spec.endpoint, or where spec.agent resolved to. */
  endpoint: z.string().optional(),
  requests: z.number().int().optional(),
  spentToday: decimalSchema.optional(),
  spentTotal: decimalSchema.optional(),
  probedPrice: decimalSchema.optional(),
  /** Payment channels of the purchase (batch-settlement), in token units. */
  channels: z
    .object({
      /** Deposits signed (counted in spentTotal until refunded). */
      deposited: decimalSchema,
      /** What the sellers charged by voucher: paid for calls. */
      charged: decimalSchema,
      /** Unused deposits returned to the wallet (no longer in spentTotal). */
      refunded: decimalSchema,
      /** Unused deposit the buyer is withdrawing itself (initiated, not yet final); "0" when none. */
      withdrawing: decimalSchema.optional(),
    })
    .optional(),
});

export type AgentIdentitySpec = z.infer<typeof agentIdentitySpecSchema>;
export type PurchaseRequestSpec = z.infer<typeof purchaseRequestSpecSchema>;
