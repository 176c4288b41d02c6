import test from 'ava'

import { register } from './helpers.mjs'
import * as scenarios from './scenarios/tls.mjs'

register(test, scenarios)
