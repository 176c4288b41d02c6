import test from 'ava'

import { register } from './helpers.mjs'
import * as scenarios from './scenarios/lifecycle.mjs'

register(test, scenarios)
