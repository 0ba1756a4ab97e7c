/** The k3d cluster a stack owns. */
import { K3D_MAX_NAME } from "./constants";
import { asString, isUnknown, type JsonObject } from "./values";

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export function checkK3dName(props: JsonObject): string[] {
  if (isUnknown(props.name)) return [];
  const name = asString(props.name);
  if (name === undefined) return ["K3dCluster has no name"];
  const problems: string[] = [];
  if (name.length > K3D_MAX_NAME) {
    problems.push(
      `k3d cluster name "${name}" is ${name.length} characters; k3d allows at most ${K3D_MAX_NAME}: set a shorter cluster.name`,
    );
  }
  if (!DNS_LABEL.test(name))
    problems.push(`k3d cluster name "${name}" must be lowercase letters, digits and '-'`);
  return problems;
}
