import { clipVitestConfig } from '../../vitest.shared.ts';

export default clipVitestConfig();
