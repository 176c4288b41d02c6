import test from 'ava'

import { register } from './helpers.mjs'
import * as scenarios from './scenarios/write.mjs'

register(test, scenarios)
