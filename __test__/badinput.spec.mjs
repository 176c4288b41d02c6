import test from 'ava'

import { register } from './helpers.mjs'
import * as scenarios from './scenarios/badinput.mjs'

register(test, scenarios)
