import test from 'ava'

import { register } from './helpers.mjs'
import * as scenarios from './scenarios/handlers.mjs'

register(test, scenarios)
