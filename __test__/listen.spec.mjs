import test from 'ava'

import { register } from './helpers.mjs'
import * as scenarios from './scenarios/listen.mjs'

register(test, scenarios)
