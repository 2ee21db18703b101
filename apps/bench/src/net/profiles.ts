// Link profiles: a bandwidth cap (tbf) and a round-trip time (the delay proxy).
export interface LinkProfile {
  name: string;
  /** Bandwidth cap in Mbit/s; undefined = unlimited (no qdisc at all). */
  rateMbit?: number;
  rttMs: number;
}

export const BANDWIDTHS: { label: string; rateMbit?: number }[] = [
  { label: '100mbit', rateMbit: 100 },
  { label: '1gbit', rateMbit: 1000 },
  { label: 'unlimited' },
];
export const RTTS = [0, 10, 50];

export function profileName(rateMbit: number | undefined, rttMs: number): string {
  const bandwidth = rateMbit === undefined ? 'unlimited' : rateMbit >= 1000 ? `${rateMbit / 1000}gbit` : `${rateMbit}mbit`;
  return `${bandwidth}-${rttMs}ms`;
}

export function makeProfile(rateMbit: number | undefined, rttMs: number): LinkProfile {
  return { name: profileName(rateMbit, rttMs), rttMs, ...(rateMbit === undefined ? {} : { rateMbit }) };
}

/** Parses `100mbit-10ms`, `1gbit-50ms`, `unlimited-0ms`. */
export function parseProfile(text: string): LinkProfile {
  const match = /^(?:(\d+(?:\.\d+)?)(mbit|gbit)|unlimited)-(\d+)ms$/.exec(text.trim());
  if (!match) throw new Error(`bad link profile ${JSON.stringify(text)} (examples: 100mbit-10ms, 1gbit-0ms, unlimited-50ms)`);
  const rate = match[1] === undefined ? undefined : Number(match[1]) * (match[2] === 'gbit' ? 1000 : 1);
  return makeProfile(rate, Number(match[3]));
}

export function allProfiles(): LinkProfile[] {
  return BANDWIDTHS.flatMap((bandwidth) => RTTS.map((rtt) => makeProfile(bandwidth.rateMbit, rtt)));
}
