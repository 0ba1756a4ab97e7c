import type * as pulumi from "@pulumi/pulumi";

/**
 * Options for a component's child. Children are named from their component's name (`name`,
 * `${name}-internal`, ...), as pulumi-awsx and pulumi-eks do: a URN holds the child's own name
 * and its ancestors' types, not their names, so fixed child names allowed one instance per stack.
 *
 * Stacks created while names were fixed hold one instance of each component, under the name the
 * program gives it. For that instance `formerName` is the child's fixed name: the alias lets
 * `pulumi up` adopt the existing resource instead of replacing it. Other instances never had a
 * fixed name and get no alias (two resources may not claim one former URN).
 */
export function childOf(
  parent: pulumi.Resource,
  name: string,
  formerName: string | undefined,
): pulumi.CustomResourceOptions {
  return { parent, ...(formerName && formerName !== name ? { aliases: [{ name: formerName }] } : {}) };
}

/**
 * `former` when the component is called `programName`, the name program/stack.ts gives it (the
 * one instance a stack from before could hold); otherwise undefined.
 */
export function formerly<T>(name: string, programName: string, former: T): T | undefined {
  return name === programName ? former : undefined;
}
