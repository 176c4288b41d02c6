import test from 'ava'

import { register } from './helpers.mjs'
import * as scenarios from './scenarios/connect.mjs'

register(test, scenarios)
