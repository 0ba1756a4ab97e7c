/**
 * The x402 payment payload schemas (v1 and v2) for the gateway's request path: the shapes of
 * `@x402/core/schemas`, written in zod 4, which checks a payload several times faster than the
 * library's zod 3 schemas (~7 µs against ~40 µs a voucher here; a tenth of a channel payment's
 * CPU went to that check).
 *
 * The library stays the authority: a payload these schemas refuse is checked again with the
 * library's, whose verdict and wording are the answer (refusals are rare and not the fast path).
 * So a payload is refused only when the library refuses it; the one way to differ would be to
 * accept what the library refuses, and tests/unit/payloadSchema.test.ts runs both on valid and
 * malformed payloads and requires the same verdicts and the same parsed data.
 */
import type { PaymentPayloadV1, PaymentPayloadV2 } from "@x402/core/schemas";
import { PaymentPayloadV1Schema, PaymentPayloadV2Schema } from "@x402/core/schemas";
import { z } from "zod";

const NonEmptyString = z.string().min(1);
const AnyRecord = z.record(z.string(), z.unknown());
const OptionalAnyRecord = AnyRecord.optional().nullable();
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const undefinedWhenNull = <T>(value: T | null | undefined): T | undefined => value ?? undefined;

const ResourceInfo = z.object({
  url: NonEmptyString,
  description: z.string().nullish().transform(undefinedWhenNull),
  mimeType: z.string().nullish().transform(undefinedWhenNull),
  serviceName: z.string().min(1).max(32).regex(PRINTABLE_ASCII).nullish().transform(undefinedWhenNull),
  tags: z
    .array(z.string().min(1).max(32).regex(PRINTABLE_ASCII))
    .max(5)
    .nullish()
    .transform(undefinedWhenNull),
  iconUrl: z.string().max(2048).nullish().transform(undefinedWhenNull),
});

const PaymentRequirementsV2 = z.object({
  scheme: NonEmptyString,
  network: z
    .string()
    .min(3)
    .refine((network) => network.includes(":")),
  amount: NonEmptyString,
  asset: NonEmptyString,
  payTo: NonEmptyString,
  maxTimeoutSeconds: z.number().positive(),
  extra: OptionalAnyRecord,
});

const FastPaymentPayloadV2 = z.object({
  x402Version: z.literal(2),
  resource: ResourceInfo.nullish().transform(undefinedWhenNull),
  accepted: PaymentRequirementsV2,
  payload: AnyRecord,
  extensions: OptionalAnyRecord,
});

const FastPaymentPayloadV1 = z.object({
  x402Version: z.literal(1),
  scheme: NonEmptyString,
  network: NonEmptyString,
  payload: AnyRecord,
});

export type PayloadCheck<T> = { ok: true; payload: T } | { ok: false; message: string };

/** `json` as an x402 v2 payment payload, or the library's reason it is not one. */
export function checkPayloadV2(json: unknown): PayloadCheck<PaymentPayloadV2> {
  const fast = FastPaymentPayloadV2.safeParse(json);
  if (fast.success) return { ok: true, payload: fast.data as PaymentPayloadV2 };
  return libraryVerdict(PaymentPayloadV2Schema.safeParse(json));
}

/** `json` as an x402 v1 payment payload, or the library's reason it is not one. */
export function checkPayloadV1(json: unknown): PayloadCheck<PaymentPayloadV1> {
  const fast = FastPaymentPayloadV1.safeParse(json);
  if (fast.success) return { ok: true, payload: fast.data as PaymentPayloadV1 };
  return libraryVerdict(PaymentPayloadV1Schema.safeParse(json));
}

function libraryVerdict<T>(
  parsed: { success: true; data: unknown } | { success: false; error: { issues: { message: string }[] } },
): PayloadCheck<T> {
  if (parsed.success) return { ok: true, payload: parsed.data as T };
  return { ok: false, message: parsed.error.issues[0]?.message ?? "invalid payload" };
}

/** The zod 4 schemas alone (for the test that holds them equal to the library's). */
export const fastPayloadSchemas = { v1: FastPaymentPayloadV1, v2: FastPaymentPayloadV2 } as const;
