import test from 'ava'

import { register } from './helpers.mjs'
import * as scenarios from './scenarios/tls-verify.mjs'

register(test, scenarios)
