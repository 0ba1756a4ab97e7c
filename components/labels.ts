/** Standard labels for every object this stack creates. */
export function labelsFor(component: string, instance = component): Record<string, string> {
  return {
    "app.kubernetes.io/name": component,
    "app.kubernetes.io/instance": instance,
    "app.kubernetes.io/part-of": "obol-stack",
    "app.kubernetes.io/managed-by": "pulumi",
  };
}

/** Only the labels that select a component's pods (immutable on a Deployment). */
export function selectorFor(component: string, instance = component): Record<string, string> {
  return { "app.kubernetes.io/name": component, "app.kubernetes.io/instance": instance };
}
