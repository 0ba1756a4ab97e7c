// The obol-stack CrossGuard policy pack: `pulumi preview --policy-pack ./policy`.
// Rules and their enforcement levels are in policies.ts and README.md.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("obol-stack", { policies });
