/** The stages a run goes through, in order: its `ObjinferStage` search attribute and `objinfer list --stage`. */
export const Stage = ['preflight', 'provision', 'plan', 'infer', 'done'] as const;
export type Stage = (typeof Stage)[number];
